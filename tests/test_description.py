"""model.json records the refinenet-tf version that wrote it; a newer major version is one warning line."""

from __future__ import annotations

import json
import logging

from refinenet_tf.description import FILE_NAME, WRITER_KEY, default_description, load_description
from refinenet_tf.version import __version__


def test_model_json_records_the_version_that_wrote_it_and_reads_back_the_same(tmp_path):
    description = default_description("lw-refinenet-mobilenetv2", 5)
    path = description.save(str(tmp_path))
    assert json.loads(open(path, encoding="utf-8").read())[WRITER_KEY] == __version__
    assert load_description(str(tmp_path)) == description


def test_a_newer_major_version_is_one_warning_line_and_older_ones_none(tmp_path, caplog):
    path = default_description("lw-refinenet-mobilenetv2", 5).save(str(tmp_path))
    record = json.loads(open(path, encoding="utf-8").read())
    newer = f"{int(__version__.split('.')[0]) + 1}.0.0"
    for written_by, warned in ((newer, True), ("0.1.0", False)):
        (tmp_path / FILE_NAME).write_text(json.dumps({**record, WRITER_KEY: written_by}), encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="refinenet_tf.description"):
            assert load_description(str(tmp_path)).num_classes == 5
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == int(warned)
        if warned:
            assert f"written by refinenet-tf {newer}, a newer major version than this {__version__}" in lines[0]
