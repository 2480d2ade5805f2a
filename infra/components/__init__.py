"""One ComponentResource per concern; children are parented to it and named after it."""

from .cluster import ClusterAccess
from .gpu_node_pool import GpuNodePool
from .kubernetes_objects import ServingNamespace
from .online_evaluator import OnlineEvaluator
from .release_config import ReleaseConfig
from .serving_stack import ServingStack
from .traffic_routes import TrafficRoutes

__all__ = ["ClusterAccess", "GpuNodePool", "OnlineEvaluator", "ReleaseConfig", "ServingNamespace", "ServingStack",
           "TrafficRoutes"]
