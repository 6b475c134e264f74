"""Range checks of distiller settings, shared so that every model says the same thing: the
config key, its value and the allowed range."""
import math
from typing import Iterable, Optional

TEMPERATURE_RULE = ('must be > 0: a temperature divides the logits (0 gives NaN, a negative '
                    'one reverses the order of the classes)')
WEIGHT_RULE = ('must be >= 0: a loss weight scales its term (0 turns it off, a negative one '
               'trains against it)')
PSKD_ALPHA = ('the PS-KD target is (1 - alpha) * label + alpha * previous prediction (above 1 '
              'the label gets a negative weight; 0 is plain one-hot training)')
BYOT_ALPHA = 'BYOT weighs the label by 1 - alpha and the deepest exit by alpha'


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _fail(key: str, value, rule: str) -> None:
    raise ValueError(f'{key} = {value!r} {rule}')


def check_temperature(value, key: str) -> None:
    """``value`` > 0 (finite), else ``ValueError`` naming ``key``."""
    if not (_is_number(value) and value > 0):
        _fail(key, value, TEMPERATURE_RULE)


def check_loss_weight(value, key: str) -> None:
    """``value`` >= 0 (finite), else ``ValueError`` naming ``key``."""
    if not (_is_number(value) and value >= 0):
        _fail(key, value, WEIGHT_RULE)


def check_fraction(value, key: str, meaning: str) -> None:
    """``value`` in [0, 1], else ``ValueError`` naming ``key`` and saying ``meaning``."""
    if not (_is_number(value) and 0 <= value <= 1):
        _fail(key, value, f'must be in [0, 1]: {meaning}')


def check_settings(prefix: str, settings: Optional[dict], temperatures: Iterable[str] = (),
                   weights: Iterable[str] = (), fractions: Optional[dict] = None) -> None:
    """Check the named entries of an option dict (``model.byot`` etc.; None is off):
    ``temperatures`` > 0, ``weights`` >= 0, ``fractions`` (name → meaning) in [0, 1]."""
    if settings is None:
        return
    for name in temperatures:
        check_temperature(settings[name], f'{prefix}.{name}')
    for name in weights:
        check_loss_weight(settings[name], f'{prefix}.{name}')
    for name, meaning in (fractions or {}).items():
        check_fraction(settings[name], f'{prefix}.{name}', meaning)


def check_model_settings(prefix: str = 'model', temperatures: Optional[dict] = None,
                         weights: Optional[dict] = None) -> None:
    """Check keyword settings of a model: ``temperatures`` (name → value) > 0 and
    ``weights`` (name → value) >= 0, each named ``{prefix}.{name}`` in the error."""
    check_settings(prefix, {**(temperatures or {}), **(weights or {})},
                   temperatures=temperatures or (), weights=weights or ())


def model_config_key(name: str) -> str:
    """The config key of a distiller's model: ``'teacher'`` → ``'model.teacher'``,
    ``'student1'`` → ``'model.students[1]'``."""
    return 'model.teacher' if name == 'teacher' else f'model.students[{name[len("student"):]}]'
