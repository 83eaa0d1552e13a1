"""Hand-written figures of a trained run in the shape of the figures files edgeshop-card and the
grocery recipe write: model cards' sentences are checked against them (tests/test_model_cards.py,
studies/grocery/tests/test_grocery_card.py)."""

from __future__ import annotations


def model_figures(top1: float, coarse: float, n: int = 200, ms: tuple[float, float] = (7.0, 4.0)) -> dict:
    per_class = [{"label": "a", "recall": 1.0, "support": n // 2}, {"label": "b", "recall": 0.5, "support": n // 2},
                 {"label": "c", "recall": 0.0, "support": 0}]
    return {"file": "m.tflite", "size_bytes": 4_070_000,
            "val": {"n": n, "top1": top1, "top5": 0.99, "coarse_top1": coarse, "per_class": per_class,
                    "most_confused": [{"true": "b", "predicted": "a", "count": 3}], "ece": 0.1, "macro_recall": 0.75},
            "audit": {"fully_integer": True, "input": {"dtype": "int8", "scale": 1.0, "zero_point": -128},
                      "weight_sparsity": 0.0},
            "latency_1t": {"p50_ms": ms[0], "runs": 200}, "latency_2t": {"p50_ms": ms[1], "runs": 200}}


def run_figures(top1: float = 0.875, coarse: float = 0.92) -> dict:
    return {"recipe": {"arch": "efficientnet_lite0", "image_size": 288, "train_image_size": 240, "epochs": 14,
                       "select_best_epoch": False, "qat": True},
            "train_metrics": {"phases": ["head", "train", "qat"], "val_top1_float": 0.87},
            "int8": model_figures(top1, coarse), "float16": model_figures(0.87, 0.91, ms=(14.0, 10.0)),
            "wall_seconds_train_and_export": 2280.0, "machine": {"cores": 2, "cpu": "AMD EPYC", "python": "3.11"}}
