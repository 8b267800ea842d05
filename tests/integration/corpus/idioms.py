"""Notebook idioms a bento must capture faithfully, each a small notebook: setup cells, then a serving cell.

Taken from what notebooks do and what capture tools have got wrong (cloudpickle, MLflow and papermill
issues): closures, lambdas, partials, decorators, bound and class methods, dataclasses, enums, values
changed after a definition, objects whose class identity matters, estimators defined in the notebook,
imports hidden in bodies. Every serving cell defines one API, ``handler``, asked the ``inputs`` bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Idiom:
    name: str
    cells: tuple[str, ...]  # setup cells, run in order before the serving cell
    serve: str  # the serving cell's body (defines ``handler``)
    inputs: tuple[dict[str, Any], ...]
    after: str = ""  # a cell run after serving and calling, before the build (state changed meanwhile)
    requires: tuple[str, ...] = ()  # distributions the bento's requirements must name


IDIOMS = (
    Idiom(
        "closure",
        (
            "def make_scaler(f):\n    def scale(v):\n        return [x * f for x in v]\n    return scale",
            "double = make_scaler(2.0)",
        ),
        "def handler(v: list) -> list:\n    return double(v)",
        ({"v": [1.0, 2.5]}, {"v": []}),
    ),
    Idiom(
        "lambda",
        ("OFFSET = 3\nnormalize = lambda v: [x - OFFSET for x in v]",),
        "def handler(v: list) -> list:\n    return normalize(v)",
        ({"v": [4, 5]},),
    ),
    Idiom(
        "partial",
        (
            "import functools\ndef clip(v, lo, hi):\n    return [min(max(x, lo), hi) for x in v]",
            "unit = functools.partial(clip, lo=0, hi=1)",
        ),
        "def handler(v: list) -> list:\n    return unit(v)",
        ({"v": [-1, 0.25, 3]},),
    ),
    Idiom(
        "decorator-wraps",
        (
            "import functools\ndef doubled(fn):\n    @functools.wraps(fn)\n    def wrapper(x):\n"
            "        return 2 * fn(x)\n    return wrapper",
            "@doubled\ndef plus_one(x):\n    return x + 1",
        ),
        "def handler(x: int) -> int:\n    return plus_one(x)",
        ({"x": 1}, {"x": -4}),
    ),
    Idiom(
        "decorator-closure",
        (
            "def tripled(fn):\n    def wrapper(x):\n        return 3 * fn(x)\n    return wrapper",
            "@tripled\ndef ident(x):\n    return x",
        ),
        "def handler(x: int) -> int:\n    return ident(x)",
        ({"x": 7},),
    ),
    Idiom(
        "lru-cache",
        (
            "import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
            "    return n if n < 2 else fib(n - 1) + fib(n - 2)",
        ),
        "def handler(n: int) -> int:\n    return fib(n)",
        ({"n": 30},),
    ),
    Idiom(
        "nested-function",
        ("SCALE = 10",),
        "def handler(v: list) -> list:\n    def inner(x):\n        return x * SCALE\n"
        "    return [inner(x) for x in v if x > 0]",
        ({"v": [-1, 1, 2]},),
    ),
    Idiom(
        "bound-method",
        (
            "class Counter:\n    def __init__(self, base):\n        self.base = base\n"
            "    def add(self, x):\n        return self.base + x",
            "counter = Counter(100)\nadd = counter.add",
        ),
        "def handler(x: int) -> int:\n    return add(x)",
        ({"x": 5},),
    ),
    Idiom(
        "class-and-static-methods",
        (
            "class Units:\n    factor = 1000\n    @classmethod\n"
            "    def to_milli(cls, x):\n        return x * cls.factor\n"
            "    @staticmethod\n    def rounded(x):\n        return round(x, 1)",
            "convert = Units.to_milli",
        ),
        "def handler(x: float) -> list:\n    return [convert(x), Units.rounded(x), Units.to_milli(2)]",
        ({"x": 1.26},),
    ),
    Idiom(
        "property",
        (
            "class Box:\n    def __init__(self, w, h):\n        self.w, self.h = w, h\n    @property\n"
            "    def area(self):\n        return self.w * self.h",
            "box = Box(3, 4)",
        ),
        "def handler(k: int) -> int:\n    return box.area * k",
        ({"k": 2},),
    ),
    Idiom(
        "dataclass",
        (
            "import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass Config:\n    gain: float\n"
            "    bias: float = 0.5",
            "config = Config(2.0)",
        ),
        "def handler(x: float) -> list:\n    return [config.gain * x + config.bias, dataclasses.asdict(config)]",
        ({"x": 1.5},),
    ),
    Idiom(
        "enum",
        (
            "import enum\nclass Level(enum.Enum):\n    LOW = 1\n    HIGH = 2",
            "DEFAULT = Level.HIGH\nTHRESHOLDS = {Level.LOW: 0.2, Level.HIGH: 0.8}",
        ),
        "def handler(x: float) -> list:\n    return [DEFAULT is Level.HIGH, x > THRESHOLDS[DEFAULT], Level(1).name]",
        ({"x": 0.5}, {"x": 0.9}),
    ),
    Idiom(
        "reassigned-global",
        ("THRESHOLD = 0.1",),
        "def handler(x: float) -> bool:\n    return x > THRESHOLD",
        ({"x": 0.5},),
        after="THRESHOLD = 0.9",
    ),
    Idiom(
        "mutated-global",
        ("LABELS = ['cat']\nWEIGHTS = {'cat': 1}",),
        "def handler(label: str) -> list:\n    return [LABELS, WEIGHTS.get(label, 0)]",
        ({"label": "dog"},),
        after="LABELS.append('dog')\nWEIGHTS['dog'] = 7",
    ),
    Idiom(
        "class-identity",
        (
            "class Rule:\n    def __init__(self, limit):\n        self.limit = limit",
            "rules = [Rule(2), 'not a rule', Rule(5)]",
        ),
        "def handler(x: int) -> list:\n    return [isinstance(r, Rule) and x > r.limit for r in rules]",
        ({"x": 3},),
    ),
    Idiom(
        "subclass",
        (
            "class Base:\n    def score(self, x):\n        return x",
            "class Shifted(Base):\n    def score(self, x):\n        return super().score(x) + 1",
            "model = Shifted()",
        ),
        "def handler(x: int) -> list:\n    return [model.score(x), isinstance(model, Base), type(model).__name__]",
        ({"x": 1},),
    ),
    Idiom(
        "callable-object",
        (
            "class Polynomial:\n    def __init__(self, *coefficients):\n        self.coefficients = coefficients\n"
            "    def __call__(self, x):\n        return sum(c * x ** i for i, c in enumerate(self.coefficients))",
            "poly = Polynomial(1, 0, 2)",
        ),
        "def handler(x: float) -> float:\n    return poly(x)",
        ({"x": 3.0},),
    ),
    Idiom(
        "function-registry",
        ("def add(a, b):\n    return a + b", "OPS = {'add': add, 'mul': lambda a, b: a * b}"),
        "def handler(op: str, a: float, b: float) -> float:\n    return OPS[op](a, b)",
        ({"op": "add", "a": 2, "b": 3}, {"op": "mul", "a": 2, "b": 3}),
    ),
    Idiom(
        "redefined-function",
        ("def helper(x):\n    return x", "def helper(x):\n    return -x"),
        "def handler(x: int) -> int:\n    return helper(x)",
        ({"x": 4},),
    ),
    Idiom(
        "default-argument",
        ("K = 3\ndef scaled(x, k=K):\n    return x * k",),
        "def handler(x: int) -> int:\n    return scaled(x)",
        ({"x": 2},),
    ),
    Idiom(
        "import-in-body",
        (),
        "def handler(text: str) -> dict:\n    import yaml\n    return yaml.safe_load(text)",
        ({"text": "a: 1\nb: [x, y]"},),
        requires=("PyYAML",),
    ),
    Idiom(
        "aliased-imports",
        ("import numpy as np\nfrom numpy import linalg as la",),
        "def handler(v: list) -> float:\n    return float(la.norm(np.asarray(v)))",
        ({"v": [3, 4]},),
        requires=("numpy",),
    ),
    Idiom(
        "conditional-import",
        ("try:\n    import orjson as fastjson\nexcept ImportError:\n    fastjson = None",),
        "def handler(x: int) -> list:\n    return [fastjson is not None, x]",
        ({"x": 1},),
        requires=("orjson",),
    ),
    Idiom(
        "numpy-array",
        ("import numpy as np\nW = np.arange(6, dtype=np.float64).reshape(2, 3) / 7",),
        "def handler(v: list) -> list:\n    return (W @ np.asarray(v, dtype=np.float64)).tolist()",
        ({"v": [1, 2, 3]},),
    ),
    Idiom(
        "sklearn-pipeline",
        (
            "import numpy as np\nfrom sklearn.base import BaseEstimator, TransformerMixin\n"
            "from sklearn.pipeline import make_pipeline\nfrom sklearn.linear_model import LogisticRegression",
            "class Shift(BaseEstimator, TransformerMixin):\n    def __init__(self, by=1.0):\n        self.by = by\n"
            "    def fit(self, X, y=None):\n        self.mean_ = X.mean(axis=0)\n        return self\n"
            "    def transform(self, X):\n        return X - self.mean_ + self.by",
            "X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])\n"
            "pipe = make_pipeline(Shift(), LogisticRegression()).fit(X, [0, 0, 1, 1])",
        ),
        "def handler(rows: list) -> list:\n    return [isinstance(pipe.steps[0][1], Shift),"
        " pipe.predict_proba(np.array(rows)).tolist()]",
        ({"rows": [[0.5, 0.5], [3.0, 3.0]]},),
        requires=("scikit-learn", "numpy"),
    ),
    Idiom(
        "torch-module",
        (
            "import torch\nclass Tiny(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.linear = torch.nn.Linear(3, 2)\n"
            "    def forward(self, x):\n        return self.linear(x).relu()",
            "torch.manual_seed(0)\nnet = Tiny().eval()",
        ),
        "def handler(v: list) -> list:\n    with torch.no_grad():\n"
        "        return net(torch.tensor([v], dtype=torch.float32))[0].tolist()",
        ({"v": [1.0, -2.0, 0.5]},),
        requires=("torch",),
    ),
    Idiom(
        "async-handler",
        ("import asyncio\nPREFIX = 'hi '",),
        "async def handler(name: str) -> str:\n    await asyncio.sleep(0)\n    return PREFIX + name",
        ({"name": "ada"},),
    ),
    Idiom(
        "batched-numpy",
        ("import numpy as np\nBIAS = np.array([0.5, -0.5])",),
        "from bento_jupyter import api\n\n@api(batchable=True, max_batch_size=8)\n"
        "def handler(x: np.ndarray) -> np.ndarray:\n    return x * 2 + BIAS",
        ({"x": [[1.0, 2.0]]}, {"x": [[0.0, 0.0], [3.0, 3.0]]}),
    ),
    # state objects got after their definitions ran (the bento holds them as served)
    Idiom(
        "class-attribute-patched",
        (
            "class Gate:\n    threshold = 0.5\n    def open(self, x):\n        return x > self.threshold",
            "Gate.threshold = 2.0\nGate.labels = ['shut', 'open']",
        ),
        "def handler(x: float) -> str:\n    return Gate.labels[Gate().open(x)]",
        ({"x": 1.0}, {"x": 3.0}),
        after="Gate.threshold = 0.1",  # after serving: asked again, the latest answers are the ones kept
    ),
    Idiom(
        "function-attribute-and-late-default",
        ("K = 2\ndef times(x, k=K):\n    return x * k * times.boost", "times.boost = 10\nK = 5"),
        "def handler(x: int) -> list:\n    return [times(x), K]",
        ({"x": 3},),
    ),
    Idiom(
        "method-replaced-after-definition",
        ("class Net:\n    def run(self, x):\n        return x", "Net.run = lambda self, x: x * 100"),
        "def handler(x: int) -> int:\n    return Net().run(x)",
        ({"x": 3},),
    ),
    Idiom(
        "nested-class-identity",
        (
            "class Outer:\n    class Inner:\n        def __init__(self, v):\n            self.v = v",
            "things = [Outer.Inner(2), 'x', Outer.Inner(5)]",
        ),
        "def handler(x: int) -> list:\n    return [isinstance(t, Outer.Inner) and t.v > x for t in things]",
        ({"x": 3},),
    ),
    Idiom(
        "registration-decorator",
        (
            "REGISTRY = {}\ndef register(f):\n    REGISTRY[f.__name__] = f\n    return f",
            "@register\ndef inc(x):\n    return x + 1\n\n@register\ndef dbl(x):\n    return x * 2",
        ),
        "def handler(x: int) -> list:\n    return [len(REGISTRY)] + [REGISTRY[k](x) for k in sorted(REGISTRY)]",
        ({"x": 5},),
    ),
    Idiom(
        "default-is-a-notebook-object",
        (
            "class Scale:\n    def __init__(self, k):\n        self.k = k",
            "unit = Scale(7)\ndef apply(x, s=unit):\n    return x * s.k",
        ),
        "def handler(x: int) -> int:\n    return apply(x)",
        ({"x": 2},),
    ),
)
