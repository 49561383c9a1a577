"""Every docstring example of the package runs: one doctest case per
docstring that has `>>>` lines, over every module of `keras_ann`.

An example that needs an optional dependency is skipped when that is not
installed, and fails instead under CI=true (as `testing_utils.require`).
Every example runs on each Keras backend; a dataset example builds its
files in a temporary directory, and the test runs in one of its own.
"""

import doctest
import importlib
import importlib.util
import os
import pkgutil
import re

import pytest

import keras_ann

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Examples that need more than the package's dependencies, by the doctest's
# name (`module.object`) or a module name (all of its examples).
NEEDS_MODULES = {
    "keras_ann.weights.pth_reader.load_torch_checkpoint": ("torch",),  # writes the file it reads
}


def _modules():
    names = ["keras_ann"]
    names += [m.name for m in pkgutil.walk_packages(keras_ann.__path__, "keras_ann.")]
    return [importlib.import_module(name) for name in sorted(names)]


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for module in _modules():
        # `module=` keeps only objects defined in this module, so a name
        # re-exported by a package is collected once, where it is defined.
        for test in finder.find(module, module.__name__, module=module):
            if test.examples:
                tests.append(test)
    return sorted(tests, key=lambda t: t.name)


DOCTESTS = _doctests()


def _prefixes(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _check_requirements(name):
    for key in _prefixes(name):
        for module in NEEDS_MODULES.get(key, ()):
            if importlib.util.find_spec(module) is None:
                if os.environ.get("CI"):
                    pytest.fail(f"{module} is required in CI but not installed ({name})")
                pytest.skip(f"{module} is not installed")


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_example(test, tmp_path, monkeypatch):
    _check_requirements(test.name)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    # The finder shares one copy of the module's globals among its tests.
    test = doctest.DocTest(test.examples, dict(test.globs), test.name, test.filename, test.lineno, test.docstring)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, f"{test.name} ({test.filename}:{test.lineno}):\n{''.join(report)}"


def test_every_module_with_examples_is_collected():
    # A `>>>` the finder misses (e.g. in a comment or a private helper's
    # string it cannot reach) would be an example that never runs.
    with_examples = set()
    for module in _modules():
        with open(module.__file__, encoding="utf-8") as f:
            if re.search(r"^\s*>>> ", f.read(), re.M):
                with_examples.add(os.path.abspath(module.__file__))
    collected = {os.path.abspath(t.filename) for t in DOCTESTS}
    assert with_examples <= collected, sorted(with_examples - collected)


def test_no_example_is_skipped():
    # "Every example runs": a `+SKIP` directive would let one rot unseen.
    skipped = [
        f"{t.name}:{t.lineno + e.lineno + 1}" for t in DOCTESTS for e in t.examples if e.options.get(doctest.SKIP)
    ]
    assert not skipped, f"examples marked +SKIP: {skipped}"
