"""Per-image routing: the sub-batches a route gets, exactly and in batch order."""

from __future__ import annotations

import pytest
import torch

from gates.gate.split import Decisions, format_indices, route_images, split_latent, split_mask, take


class Blocker:
    pass


def test_decisions_give_each_routes_indices_in_batch_order():
    d = Decisions((1, 2, 1, 3, 1))
    assert d.batch == 5 and d.indices(1) == [0, 2, 4] and d.indices(2) == [1] and d.indices(4) == []
    assert format_indices(d.indices(1)) == "0,2,4" and format_indices([]) == ""


@pytest.mark.parametrize("routes", [(), (0, 1), (1, True), (1, "2")])
def test_decisions_refuse_what_is_not_one_route_per_image(routes):
    with pytest.raises(ValueError):
        Decisions(routes)


def test_take_is_bit_exact_and_keeps_the_dtype():
    image = torch.rand(4, 3, 5, 3, dtype=torch.bfloat16)
    out = take(image, [0, 2], 4)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.view(torch.int16), image[[0, 2]].view(torch.int16))
    assert take(image, [0, 1, 2, 3], 4) is image  # all of it: the tensor itself


def test_take_refuses_a_batch_that_does_not_match():
    with pytest.raises(ValueError, match=r"batch of 3 .* for 4 images"):
        take(torch.rand(3, 2, 2, 3), [0], 4)
    with pytest.raises(ValueError):
        take(torch.rand(1, 2, 2, 3), [0], 4)  # an image of batch 1 is not shared


def test_a_mask_of_batch_1_or_2d_is_shared_and_a_per_image_mask_is_cut():
    per_image = torch.rand(4, 2, 2)
    assert torch.equal(split_mask(per_image, [1, 3], 4), per_image[[1, 3]])
    shared = torch.rand(1, 2, 2)
    assert split_mask(shared, [1, 3], 4) is shared
    flat = torch.rand(2, 2)
    assert split_mask(flat, [1], 4) is flat
    with pytest.raises(ValueError, match="mask"):
        split_mask(torch.rand(3, 2, 2), [0], 4)


def test_a_latent_is_cut_with_its_noise_mask_and_batch_index():
    latent = {
        "samples": torch.randn(4, 4, 2, 2),
        "noise_mask": torch.rand(4, 1, 16, 16),
        "batch_index": [10, 11, 12, 13],
        "other": "kept",
    }
    out = split_latent(latent, [0, 3], 4)
    assert torch.equal(out["samples"], latent["samples"][[0, 3]])
    assert torch.equal(out["noise_mask"], latent["noise_mask"][[0, 3]])
    assert out["batch_index"] == [10, 13] and out["other"] == "kept"
    assert latent["samples"].shape[0] == 4  # the input is not changed


def test_a_latent_of_batch_1_is_shared_and_a_shared_noise_mask_too():
    single = {"samples": torch.randn(1, 4, 2, 2), "noise_mask": torch.rand(1, 1, 8, 8), "batch_index": [0]}
    out = split_latent(single, [2], 4)
    assert out["samples"] is single["samples"] and out["noise_mask"] is single["noise_mask"]
    assert out["batch_index"] == [0]
    mixed = {"samples": torch.randn(4, 4, 2, 2), "noise_mask": torch.rand(1, 1, 8, 8)}
    out = split_latent(mixed, [1, 2], 4)
    assert out["samples"].shape[0] == 2 and out["noise_mask"] is mixed["noise_mask"]


def test_a_video_latent_is_cut_along_its_batch():
    latent = {"samples": torch.randn(3, 16, 2, 4, 4)}
    assert torch.equal(split_latent(latent, [1], 3)["samples"], latent["samples"][[1]])


def test_split_latent_refuses_what_is_not_a_latent():
    with pytest.raises(ValueError, match="LATENT"):
        split_latent({"x": 1}, [0], 1)
    with pytest.raises(ValueError, match="latent has a batch of 3"):
        split_latent({"samples": torch.zeros(3, 4, 1, 1)}, [0], 4)


def test_route_images_blocks_the_routes_no_image_took():
    image = torch.rand(4, 2, 2, 3)
    out = route_images([2, 2, 5, 2], image, 6, Blocker)
    assert len(out) == 6
    assert torch.equal(out[1], image[[0, 1, 3]]) and torch.equal(out[4], image[[2]])
    assert [isinstance(o, Blocker) for o in out] == [True, False, True, True, False, True]
    both = image[:2]
    assert route_images([1, 1], both, 2, Blocker)[0] is both  # every image: the batch itself


def test_decisions_carry_one_caption_and_one_edited_flag_per_image():
    d = Decisions((1, 2, 1), ("a", "b", "c"), (False, True, False))
    assert d.captions_of(d.indices(1)) == ["a", "c"] and d.captions_of([]) == []
    assert Decisions((1,)).captions_of([0]) is None  # a batch without captions
    with pytest.raises(ValueError, match="one of captions per image: 2 for 3"):
        Decisions((1, 2, 1), ("a", "b"))
    with pytest.raises(ValueError, match="one of edited per image"):
        Decisions((1, 2, 1), ("a", "b", "c"), (True,))
