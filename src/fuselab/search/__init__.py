"""Architecture search over a study's design space with Optuna (``fuselab search CONFIG``).

    from fuselab.search import load_search_config, run_search
    cfg = load_search_config("examples/search_avmnist.toml")   # errors name the path
    summary = run_search(cfg, out="runs/search_avmnist", workers=2)
    summary.best_config                                        # a study config: `fuselab study` it

Trials are scored on the validation split only; the chosen designs are written as an ordinary
study config whose runs evaluate them on the test split. See docs/search.md. Optuna is an
optional extra (``pip install 'fuselab[search]'``), imported when a search runs or is read.
"""

from fuselab.search.config import (
    Param,
    SearchConfig,
    SearchSpec,
    load_search_config,
    parse_search_config,
)
from fuselab.search.runner import SearchSummary, run_search

__all__ = [
    "Param",
    "SearchConfig",
    "SearchSpec",
    "SearchSummary",
    "load_search_config",
    "parse_search_config",
    "run_search",
]
