"""The shared zoo generators (../shared/zoo, or $MOTHER_ZOO_GENERATORS) for the bench/make_*_zoo.py
scripts, which import them rather than copy them."""
import argparse
import os
import sys

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "zoo")
sys.path.insert(0, os.environ.get("MOTHER_ZOO_GENERATORS", ZOO))

import make_lm_zoo as lm  # noqa: E402,F401
import make_vit_zoo as vit  # noqa: E402,F401


def lm_options(out, seed):
    """make_lm_zoo.py's options at their defaults (its corpus roots and sizes), for OUT and a seed."""
    return argparse.Namespace(out=out, seed=seed, quick=False, include_root="/usr/include", doc_root="/usr/share/doc",
                              perl_roots=lm.DEFAULT_PERL, js_roots=lm.DEFAULT_JS, domain_kb=512, file_kb=16)
