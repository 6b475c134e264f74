from .distiller_distributed_data_parallel import DistillerDistributedDataParallel

__all__ = ['DistillerDistributedDataParallel']
