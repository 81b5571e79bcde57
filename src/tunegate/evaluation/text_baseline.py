"""A classification baseline worth beating: TF-IDF n-grams + logistic regression (scikit-learn).

The base encoder with an untrained head scores near chance (CLINC150: macro-F1 0.003), so
"better than the base model" is met by any training at all. This baseline is trained on the *same*
train split the tuned model was trained on and scored on the same frozen hold-out with the same
metrics, in seconds on CPU. The gate's improvement check compares with the strongest baseline.

Features: word 1-2-grams (sublinear tf, L2-normalised), the classic configuration for short
intent texts. The classifier is logistic regression fitted by SGD (log loss, one-vs-rest, a
fixed seed, a fixed number of epochs: deterministic). On Banking77 (10k train, 77 labels) it
reaches macro-F1 0.89, like lbfgs at C=10, in a third of the time; adding char 2-5-grams gains
0.02 for 3x the time, which the gate does not need to make the point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunegate.errors import StageError
from tunegate.evaluation.scoring import Predictions
from tunegate.provenance import digest_json
from tunegate.records import Record

NAME = "tfidf_logreg"
DESCRIPTION = (
    "scikit-learn TF-IDF (word 1-2-grams) + logistic regression (SGD), trained on the run's train split"
)
#: The configuration, recorded in the evidence and part of the cache key.
CONFIG: dict[str, Any] = {
    "word_ngrams": [1, 2],
    "sublinear_tf": True,
    "min_df": 1,
    "loss": "log_loss",
    "alpha": 1e-5,
    "epochs": 20,
    "seed": 0,
}


def config_digest() -> str:
    return digest_json({"name": NAME, **CONFIG})


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(
            analyzer="word",
            ngram_range=tuple(CONFIG["word_ngrams"]),
            sublinear_tf=CONFIG["sublinear_tf"],
            min_df=CONFIG["min_df"],
            lowercase=True,
        ),
        SGDClassifier(
            loss=CONFIG["loss"],
            alpha=CONFIG["alpha"],
            max_iter=CONFIG["epochs"],
            tol=None,
            random_state=CONFIG["seed"],
        ),
    )


def predict_tfidf_logreg(
    train: Sequence[Record], holdout: Sequence[Record], labels: Sequence[str]
) -> Predictions:
    """Fit on ``train`` (text -> label) and predict the hold-out; label indices follow ``labels``."""
    import warnings

    pairs = [(r.text or "", r.label) for r in train if r.label in labels]
    if len({lab for _, lab in pairs}) < 2:
        raise StageError("the TF-IDF baseline needs at least two labels in the train split")
    pipe = _pipeline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning on tiny data says nothing to a user
        pipe.fit([t for t, _ in pairs], [lab for _, lab in pairs])
    out = pipe.predict([r.text or "" for r in holdout])
    index = {lab: i for i, lab in enumerate(labels)}
    pred = [index[str(o)] for o in out]
    return Predictions([r.id for r in holdout], [str(o) for o in out], pred)
