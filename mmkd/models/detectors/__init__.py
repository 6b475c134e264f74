from .single_box_regressor import SingleBoxRegressor

__all__ = ['SingleBoxRegressor']
