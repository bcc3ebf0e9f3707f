"""The evaluation after training: ``evaluate_after_training`` scores ``model_final.pth`` in each
of ``eval.final_modes`` into the run's files, and a relaunched finished run shows it again."""
import copy
import json
import math
import os

import torch

from bisenet import distributed
from bisenet.checkpoint import read_state_dict
from bisenet.engine.evaluator import evaluate_modes, mode_settings, plain_settings, report_text, result_to_dict
from bisenet.engine.plan import FINAL_NAME, RESULTS_NAME
from bisenet.models import build_model
from bisenet.outputs import write_json
from bisenet.signals import interrupt_means


def evaluate_after_training(cfg, model, device=None, log=None, progress=True):
    """The validation scores in each of ``eval.final_modes``, shown as the reference does (one
    table, the modes side by side). With ``train.ema_decay`` the EMA weights that
    ``model_final.pth`` holds are scored too, in columns "<mode> ema" after those of ``model``
    (the trained weights). With a run's ``log`` the table also goes to ``log.txt``, the scores
    to ``metrics.jsonl`` and, with the table, to ``results.json``; without, it is printed.
    Returns ``{column name: scores}``."""
    device = device if isinstance(device, torch.device) else distributed.resolve_device(device)
    modes = [mode_settings(name, cfg.eval) for name in cfg.eval.final_modes]
    results = evaluate_modes(cfg, model, device, modes, progress=progress)
    if cfg.train.ema_decay > 0:
        ema = copy.deepcopy(model)
        ema.load_state_dict(read_state_dict(os.path.join(cfg.train.output_dir, FINAL_NAME), ema=True))
        scores = evaluate_modes(cfg, ema, device, modes, progress=progress)
        results.update({f"{name} ema": result for name, result in scores.items()})
        modes = modes * 2
    text = report_text(results, modes, cfg.data.class_names)
    if log is None:
        if distributed.is_main_process():
            print(text)
    else:
        _record(cfg, results, modes, text, log)
    return results


def _record(cfg, results, modes, text, log):
    """The table into ``log.txt``, the scores into ``metrics.jsonl`` and both into ``results.json``."""
    names = cfg.data.class_names
    log.info(text)
    log.record(iteration=cfg.train.max_iters, final_evaluation={
        column: {**{key: _number(result[key]) for key in ("miou", "fwiou", "macc", "aacc")},
                 "iou": {name: _number(value) for name, value in zip(names, result["iou"])}}
        for column, result in results.items()})
    if distributed.is_main_process():
        path = write_json(os.path.join(cfg.train.output_dir, RESULTS_NAME), {
            "iteration": cfg.train.max_iters, "weights": os.path.join(cfg.train.output_dir, FINAL_NAME),
            "eval": eval_settings(cfg), "report": text,
            "modes": {column: result_to_dict(result, names, mode=column, **plain_settings(settings))
                      for (column, result), settings in zip(results.items(), modes)}})
        log.info(f"wrote {path}")


def final_evaluation(cfg, model, device, log, progress):
    """``evaluate_after_training`` into the run's files; Ctrl-C says what was kept."""
    with interrupt_means(f"interrupted during the evaluation after training; the trained model is saved in "
                         f"{os.path.join(cfg.train.output_dir, FINAL_NAME)}: run the same command again to "
                         "evaluate it"):
        evaluate_after_training(cfg, model, device, log, progress)


def show_finished(cfg, iteration, device, log, *, final_eval, progress):
    """A relaunched finished run: show its evaluation again, or evaluate it when it never was
    (interrupted, --no-eval) or was with other eval settings. Returns whether files were written."""
    output_dir = cfg.train.output_dir
    final_path, results_path = os.path.join(output_dir, FINAL_NAME), os.path.join(output_dir, RESULTS_NAME)
    saved = _read_results(results_path)
    header = (f"{final_path} already holds this run, finished ({iteration} iterations, the same settings): "
              "nothing to train")
    if saved is not None and (not final_eval or saved.get("eval") == eval_settings(cfg)):
        log.info(f"{header}. Its evaluation after training ({results_path}):\n{saved['report']}")
        return False
    if not final_eval:
        log.info(f"{header}.")
        return False
    why = "with the new eval settings" if saved is not None else "(it was not evaluated after training)"
    log.info(f"{header}; evaluating it {why}")
    log.open_files()
    model = build_model(cfg)
    model.load_state_dict(read_state_dict(final_path))
    final_evaluation(cfg, model.to(device), device, log, progress)
    return True


def eval_settings(cfg):
    """The settings that decide the evaluation after training, as JSON stores them."""
    settings = {key: getattr(cfg.eval, key) for key in ("final_modes", "scales", "crop_size", "protocol", "short_side")}
    return json.loads(json.dumps({**settings, "ema": cfg.train.ema_decay > 0}))


def _read_results(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _number(value):
    return float(value) if math.isfinite(value) else None
