import pytest
from mmengine.logging import MessageHub

from mmkd.utils import register_all_modules

register_all_modules(init_default_scope=True)


@pytest.fixture
def epoch_info():
    """Set the runner's epoch / max_epochs in the MessageHub, as RuntimeInfoHook does."""
    hub = MessageHub.get_current_instance()

    def set_epoch(epoch, max_epochs):
        hub.update_info('epoch', epoch)
        hub.update_info('max_epochs', max_epochs)

    yield set_epoch
    hub.pop_info('epoch', None)
    hub.pop_info('max_epochs', None)
