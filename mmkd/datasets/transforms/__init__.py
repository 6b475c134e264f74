from .load_image_checked import LoadImageChecked, check_complete

__all__ = ['LoadImageChecked', 'check_complete']
