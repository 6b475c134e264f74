import pytest
import torch

from mmkd.models.utils import PSKDMemory


class TestPSKDMemory:

    def test_targets_mix_onehot_and_rows(self):
        memory = PSKDMemory(num_classes=3)
        memory.allocate(4)
        memory.rows[2] = torch.tensor([0.2, 0.3, 0.5])
        target = memory.targets(torch.tensor([0]), torch.tensor([2]), alpha=0.5)
        # 0.5 * [1, 0, 0] + 0.5 * [0.2, 0.3, 0.5]
        torch.testing.assert_close(target, torch.tensor([[0.6, 0.15, 0.25]]))
        torch.testing.assert_close(memory.targets(torch.tensor([1]), torch.tensor([2]), 0.0),
                                   torch.tensor([[0., 1., 0.]]))

    def test_update_writes_rows(self):
        memory = PSKDMemory(num_classes=2)
        memory.allocate(3)
        memory.update(torch.tensor([2, 0]), torch.tensor([[0.1, 0.9], [0.7, 0.3]]))
        torch.testing.assert_close(memory.rows,
                                   torch.tensor([[0.7, 0.3], [0.0, 0.0], [0.1, 0.9]]))

    def test_unallocated_memory_names_the_hook(self):
        memory = PSKDMemory(num_classes=2)
        with pytest.raises(RuntimeError, match='PSKDMemoryHook'):
            memory.update(torch.tensor([0]), torch.tensor([[0.5, 0.5]]))

    def test_allocate_keeps_restored_rows_and_rejects_other_sizes(self):
        memory = PSKDMemory(num_classes=2)
        memory.load_state_dict({'rows': torch.full((5, 2), 0.5)})
        assert memory.num_samples == 5
        memory.allocate(5)
        assert torch.all(memory.rows == 0.5)
        with pytest.raises(ValueError, match='5 rows .* 6 samples'):
            memory.allocate(6)

    def test_rows_are_a_persistent_buffer(self):
        memory = PSKDMemory(num_classes=2, dtype='float16')
        memory.allocate(3)
        state = memory.state_dict()
        assert list(state) == ['rows']
        assert state['rows'].shape == (3, 2) and state['rows'].dtype == torch.float16
