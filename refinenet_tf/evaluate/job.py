"""One evaluation as the commands, the API and the demo run it: check the report folder, score the checkpoint,
then write results.json and the HTML report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from refinenet_tf.data.listfile import Sample
from refinenet_tf.defaults import TILE_OVERLAP
from refinenet_tf.description import ModelDescription
from refinenet_tf.evaluate.evaluator import EvaluationResult, InstanceMasks, evaluate, evaluation_results
from refinenet_tf.evaluate.html_report import check_report, write_report
from refinenet_tf.evaluate.report import write_results_json
from refinenet_tf.predict.crf import CRFParams
from refinenet_tf.predict.decision import LabelRule
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationJob:
    """What to evaluate with and what to write. ``results_file`` is results.json; ``report`` a folder for the
    HTML report (with the ``report_images`` worst and best images), which links ``results_file`` or writes its
    own; ``metadata`` is added to the results' metadata."""

    options: PredictOptions = SINGLE_SCALE
    crf: CRFParams | None = None
    crf_workers: int = 1
    tile: tuple[int, int] | str | None = None
    tile_overlap: float = TILE_OVERLAP
    rule: LabelRule | None = None  # --threshold / --min-confidence (None: argmax)
    precision: str = "float32"
    calibration: str | Sequence[str] | None = None  # the images int8 quantizes a plain checkpoint on
    threads: int | None = None
    on_bad_sample: str = "fail"
    instances: InstanceMasks | None = None
    save_dir: str | None = None
    results_file: str | None = None
    report: str | None = None
    report_images: int = 0
    metadata: dict = field(default_factory=dict)


def run_evaluation_job(checkpoint: str, samples: Sequence[Sample], description: ModelDescription, data_list: str,
                       job: EvaluationJob) -> tuple[EvaluationResult, dict]:
    """Evaluate ``checkpoint`` on ``samples`` (read from ``data_list``) as ``job`` says; the result and the
    results dict, written where ``job`` asks. A report folder that cannot be written is refused before any work."""
    if job.report is not None:
        check_report(job.report, writes_results=job.results_file is None)
    result = evaluate(checkpoint, samples, description, job.options, crf=job.crf, crf_workers=job.crf_workers,
                      save_dir=job.save_dir, instances=job.instances, on_bad_sample=job.on_bad_sample,
                      threads=job.threads, precision=job.precision, calibration=job.calibration,
                      report_images=job.report_images if job.report is not None else 0, tile=job.tile,
                      tile_overlap=job.tile_overlap, rule=job.rule)
    results = evaluation_results(result, description, job.options, data_list, job.crf)
    results["metadata"].update(job.metadata)
    if job.results_file is not None:
        write_results_json(job.results_file, results)
        _LOG.info("results written to %s", job.results_file)
    if job.report is not None:
        _LOG.info("report written to %s", write_report(job.report, results, description, result.gallery,
                                                       job.results_file))
    return result, results
