"""The open-set protocol's decision rules on hand-made figures (a wrong rule would ship the wrong score
or enrolment setting), and its README and docs blocks against the committed protocol.json."""

from __future__ import annotations

import json

from .conftest import FIGURES


def _row(auroc: float, gap: float, low: float) -> dict:
    return {"auroc": auroc, "auroc_minus_max_score": gap, "auroc_minus_max_score_interval": [low, gap + 0.02]}


def test_an_unknown_score_replaces_max_score_only_by_the_written_rule():
    """kNN beats max score on A by 0.03 with the paired interval above 0 but loses on the folds B;
    the prototype beats it by 0.02 and holds on B; energy beats it by 0.05 but its interval reaches
    below 0; max logit is only 0.01 better. Only the prototype passes."""
    from open_set_protocol import choose_score

    a = {"methods": {"max_score": _row(0.75, 0.0, 0.0), "knn1": _row(0.78, 0.03, 0.005),
                     "prototype": _row(0.77, 0.02, 0.001), "energy": _row(0.80, 0.05, -0.01),
                     "max_logit": _row(0.76, 0.01, 0.001)}}
    b = {"methods": {"max_score": {"mean_auroc": 0.66}, "knn1": {"mean_auroc": 0.65}, "prototype": {"mean_auroc": 0.66},
                     "energy": {"mean_auroc": 0.7}, "max_logit": {"mean_auroc": 0.7}}}
    assert choose_score(a, b) == {"passing": ["prototype"], "chosen": "prototype"}
    b["methods"]["prototype"]["mean_auroc"] = 0.6
    assert choose_score(a, b) == {"passing": [], "chosen": "max_score"}


def _candidate(views: int, iconic: bool, new: float, old_loss: float) -> dict:
    return {"views": views, "iconic_extra_shot": iconic, "old_loss": old_loss,
            "train_outside_shot_bursts": {"new_top1": new}}


def test_the_enrolment_setting_is_chosen_by_the_written_rule():
    """8 views is best but costs 1.2 points; 8 views + iconic is within the limit but too slow; of the
    rest 2 views + iconic is best, and 1 view + iconic, 0.9 points below it, has fewer views: a tie
    it wins. 1.5 points below, it no longer ties; and 2 views over 10 s is out."""
    from open_set_protocol import choose_enrolment

    five = [_candidate(1, False, 0.70, 0.005), _candidate(1, True, 0.771, 0.004), _candidate(2, True, 0.78, 0.008),
            _candidate(8, False, 0.85, 0.012), _candidate(8, True, 0.84, 0.008)]
    seconds = {(1, False): 3.0, (1, True): 3.5, (2, True): 6.0, (8, False): 16.0, (8, True): 19.0}
    assert choose_enrolment(five, seconds) == {"chosen": {"views": 1, "iconic_extra_shot": True}}
    five[1]["train_outside_shot_bursts"]["new_top1"] = 0.765  # 1.5 points below: no longer a tie
    assert choose_enrolment(five, seconds) == {"chosen": {"views": 2, "iconic_extra_shot": True}}
    assert choose_enrolment(five, {**seconds, (2, True): 10.5}) == {"chosen": {"views": 1, "iconic_extra_shot": True}}


def test_the_protocol_blocks_are_what_the_committed_figures_render():
    """Edit a protocol figure by hand, or commit protocol.json without re-rendering, and this fails:
    rerun `python studies/grocery/open_set_protocol.py --render-only`."""
    import open_set_protocol as protocol
    from readme_block import read_block

    figures = json.loads((FIGURES / "open_set" / "protocol.json").read_text())
    assert read_block("open-set-protocol").strip() == protocol.render_study(figures).strip()
    assert read_block("unknown-enrolment-figures").strip() == protocol.render_docs(figures).strip()
