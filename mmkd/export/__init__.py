"""Students of a distiller checkpoint exported as standalone checkpoints and configs
(``tools/export_students.py``), as plain mmdet / torchvision models where they can be."""
from .students import export_config, export_notes, export_students, prepare_out_dir

__all__ = ['export_config', 'export_notes', 'export_students', 'prepare_out_dir']
