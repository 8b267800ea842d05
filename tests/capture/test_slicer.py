"""The slicer on a bare InteractiveShell: every notebook idiom a handler uses is rebuilt faithfully in the
bento (loaded back here, answers compared with the kernel's), or refused with one line saying what to do."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.build import write_bento
from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.capture.slicer import capture_handlers
from bento_jupyter.errors import BentoIntegrityError, CaptureError
from bento_jupyter.kernel.actions import capture_namespace
from bento_jupyter.service.definition import ServiceDefinition


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "bento_jupyter")
    ip.run_line_magic("reset", "-f")
    yield ip
    ip.run_line_magic("reset", "-f")


def run(shell, *cells: str) -> list[str]:
    """Run ``cells`` in order, each with a fresh cell id; return the ids."""
    ids = []
    for source in cells:
        ids.append(f"cell-{len(shell._bento_magics.cell_log.cells)}")
        shell.run_cell(source, cell_id=ids[-1]).raise_error()
    return ids


def bento_of(shell, tmp_path, handler: str = "handler"):
    """Capture ``handler`` from the shell, write the bento, load it back: (source, loaded namespace)."""
    func = shell.user_ns[handler]
    code = capture_handlers([func], capture_namespace(shell), shell._bento_magics.cell_log)
    root = tmp_path / "bento"
    root.mkdir()
    write_bento(root, ServiceDefinition.from_functions("t", [func]), code, {}, [])
    definition, _ = load_bento(root, TrustPolicy())  # written by this process: trusted
    (method,) = definition.apis.values()
    return (root / "src" / "service.py").read_text(), method.func


def same_answers(shell, tmp_path, inputs, handler: str = "handler") -> str:
    source, loaded = bento_of(shell, tmp_path, handler)
    kernel = shell.user_ns[handler]
    for value in inputs:
        assert loaded(value) == kernel(value), source
    return source


def test_a_closure_made_by_a_factory_keeps_its_cell_contents(shell, tmp_path):
    run(
        shell,
        "def make_scaler(f):\n    def scale(v):\n        return [x * f for x in v]\n    return scale",
        "double = make_scaler(2.0)",
        "def handler(v: list) -> list:\n    return double(v)",
    )
    same_answers(shell, tmp_path, [[1.0, 2.5], []])


def test_a_lambda_bound_to_a_name(shell, tmp_path):
    run(
        shell,
        "OFFSET = 3\nnormalize = lambda v: [x - OFFSET for x in v]",
        "def handler(v: list) -> list:\n    return normalize(v)",
    )
    same_answers(shell, tmp_path, [[4, 5]])


def test_functools_partial_of_a_notebook_function(shell, tmp_path):
    run(
        shell,
        "import functools\ndef clip(v, lo, hi):\n    return [min(max(x, lo), hi) for x in v]",
        "unit = functools.partial(clip, lo=0, hi=1)",
        "def handler(v: list) -> list:\n    return unit(v)",
    )
    same_answers(shell, tmp_path, [[-1, 0.5, 3]])


def test_a_notebook_decorator_is_not_run_again_its_wrapper_is_held_as_served(shell, tmp_path):
    run(
        shell,
        "import functools\nMADE = []\ndef doubled(fn):\n    MADE.append(fn.__name__)\n    @functools.wraps(fn)\n"
        "    def wrapper(x):\n        return 2 * fn(x)\n    return wrapper",
        "@doubled\ndef plus_one(x):\n    return x + 1",
        "def handler(x: int) -> list:\n    return [plus_one(x), len(MADE)]",
    )
    same_answers(shell, tmp_path, [1, 5])


def test_a_decorator_without_wraps_is_stored_as_the_closure_it_made(shell, tmp_path):
    run(
        shell,
        "def tripled(fn):\n    def wrapper(x):\n        return 3 * fn(x)\n    return wrapper",
        "@tripled\ndef ident(x):\n    return x",
        "def handler(x: int) -> int:\n    return ident(x)",
    )
    same_answers(shell, tmp_path, [2])


def test_nested_functions_and_lru_cache(shell, tmp_path):
    run(
        shell,
        "import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)",
        "def handler(n: int) -> int:\n    def inner(k):\n        return fib(k) * 2\n    return inner(n)",
    )
    same_answers(shell, tmp_path, [10, 20])


def test_bound_class_and_static_methods_and_properties_of_notebook_objects(shell, tmp_path):
    run(
        shell,
        "class Scaler:\n    unit = 10\n    def __init__(self, k):\n        self.k = k\n"
        "    @property\n    def twice(self):\n        return 2 * self.k\n"
        "    @classmethod\n    def default(cls):\n        return cls(cls.unit)\n"
        "    @staticmethod\n    def add(a, b):\n        return a + b\n"
        "    def apply(self, x):\n        return self.add(x * self.k, self.twice)",
        "scaler = Scaler(3)\napply = scaler.apply\nmake = Scaler.default",
        "def handler(x: int) -> list:\n    return [apply(x), make().apply(x), Scaler.add(x, 1)]",
    )
    same_answers(shell, tmp_path, [1, 7])


def test_dataclasses_and_enums(shell, tmp_path):
    run(
        shell,
        "import dataclasses, enum\nclass Color(enum.Enum):\n    RED = 1\n    BLUE = 2",
        "@dataclasses.dataclass(frozen=True)\nclass Config:\n    color: Color\n    gain: float = 1.5",
        "config = Config(Color.BLUE, 2.0)",
        "def handler(x: float) -> list:\n"
        "    return [config.color is Color.BLUE, config.gain * x, Config(Color.RED).gain]",
    )
    same_answers(shell, tmp_path, [1.0])


def test_values_reassigned_or_mutated_after_the_definition_are_taken_as_served(shell, tmp_path):
    run(
        shell,
        "LABELS = ['a']\nTHRESHOLD = 0.1\nweights = {'x': 1}",
        "def handler(x: float) -> list:\n    return [x > THRESHOLD, LABELS, weights['x']]",
        "THRESHOLD = 0.9\nLABELS.append('b')\nweights['x'] = 7",
    )
    same_answers(shell, tmp_path, [0.5])


def test_an_object_of_a_notebook_class_is_an_instance_of_the_bentos_class(shell, tmp_path):
    run(
        shell,
        "class Rule:\n    def __init__(self, limit):\n        self.limit = limit",
        "rules = [Rule(2), 'not a rule', Rule(5)]",
        "def handler(x: int) -> list:\n    return [isinstance(r, Rule) and x > r.limit for r in rules]",
    )
    same_answers(shell, tmp_path, [3])


def test_an_object_of_a_redefined_class_stays_what_the_kernel_sees(shell, tmp_path):
    run(
        shell,
        "class Rule:\n    pass",
        "old = Rule()",
        "class Rule:\n    pass",
        "def handler(x: int) -> bool:\n    return isinstance(old, Rule)",
    )
    same_answers(shell, tmp_path, [0])


def test_a_scikit_learn_style_estimator_defined_in_the_notebook(shell, tmp_path):
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    run(
        shell,
        "import numpy as np\nfrom sklearn.base import BaseEstimator, TransformerMixin\n"
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.linear_model import LogisticRegression",
        "class Shift(BaseEstimator, TransformerMixin):\n    def __init__(self, by=1.0):\n        self.by = by\n"
        "    def fit(self, X, y=None):\n        self.mean_ = X.mean(axis=0)\n        return self\n"
        "    def transform(self, X):\n        return X - self.mean_ + self.by",
        "X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])\npipe = make_pipeline(Shift(), "
        "LogisticRegression()).fit(X, [0, 0, 1, 1])",
        "def handler(rows: list) -> list:\n    step = pipe.steps[0][1]\n"
        "    return [isinstance(step, Shift), pipe.predict_proba(np.array(rows)).round(6).tolist()]",
    )
    source = same_answers(shell, tmp_path, [[[0.5, 0.5], [3.0, 3.0]]])
    assert "class Shift" in source


def test_an_object_that_cannot_be_saved_fails_with_one_line_naming_it_and_its_cell(shell, tmp_path):
    ids = run(
        shell,
        "import threading\nlock = threading.Lock()",
        "def handler(x: int) -> int:\n    with lock:\n        return x",
    )
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "'lock'" in message and f"cell {ids[0]}" in message and "create it inside the function" in message


def test_imports_anywhere_in_the_captured_code_become_requirements(shell):
    run(
        shell,
        "class Reader:\n    def read(self, text):\n        import yaml\n        return yaml.safe_load(text)",
        "make = lambda: __import__('json')\n"
        "def handler(text: str) -> dict:\n    try:\n        import orjson as fast\n    except ImportError:\n"
        "        fast = None\n    return Reader().read(text)",
    )
    code = capture_handlers([shell.user_ns["handler"]], capture_namespace(shell), shell._bento_magics.cell_log)
    assert {"yaml", "orjson"} <= code.modules


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_any_module_level_value_is_held_as_the_kernel_holds_it(shell, tmp_path_factory, value):
    shell.user_ns["VALUE"] = value
    run(shell, "def handler(x: int) -> object:\n    return VALUE")
    _, loaded = bento_of(shell, tmp_path_factory.mktemp("value"))
    held = loaded(0)
    assert type(held) is type(value)
    assert held == value or repr(held) == repr(value)  # NaN is not equal to itself; its repr is


def test_an_int_too_long_for_repr_is_stored_not_written_as_source(shell, tmp_path):
    shell.user_ns["BIG"] = 7**6000  # more digits than int -> str allows by default
    run(shell, "def handler(x: int) -> bool:\n    return BIG % 1000 == x")
    source, loaded = bento_of(shell, tmp_path)
    assert "BIG =" not in source and loaded(7**6000 % 1000) is True


def test_a_function_used_under_two_names_is_defined_once_with_its_alias(shell, tmp_path):
    run(
        shell,
        "def scale(v):\n    return [2 * x for x in v]\ndouble = scale",
        "def handler(v: list) -> list:\n    return scale(v) + double(v)",
    )
    source = same_answers(shell, tmp_path, [[1, 2]])
    assert source.count("def scale") == 1 and "double = scale" in source


def test_library_functions_and_ufuncs_are_imported_not_pickled(shell, tmp_path):
    run(
        shell,
        "import numpy\nfrom functools import reduce\nfrom numpy import sqrt as root\nfrom json import dumps",
        "def handler(v: list) -> str:\n    return dumps([float(root(reduce(lambda a, b: a + b, v)))])",
    )
    source = same_answers(shell, tmp_path, [[1, 3], [16]])
    assert "from numpy import sqrt as root" in source and "from functools import reduce" in source
    assert not (tmp_path / "bento" / "models").exists() or not any((tmp_path / "bento" / "models").iterdir())


def test_a_torch_module_whose_architecture_cannot_be_saved_fails_with_one_line(shell, tmp_path):
    pytest.importorskip("torch")
    ids = run(
        shell,
        "import torch\nnet = torch.nn.Linear(2, 1)\nnet.post = lambda y: y * 2",
        "def handler(v: list) -> list:\n    return net.post(net(torch.tensor(v))).tolist()",
    )
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "'net'" in message and f"cell {ids[0]}" in message
    assert "out of the module's attributes" in message


# State changed after a definition ran: the bento holds each object as it was served, not as its source text
# re-executed would make it. (setup cells, handler cell, inputs)
SERVED_STATE = {
    "class-attribute-reassigned": (
        (
            "class Gate:\n    threshold = 0.5\n    def open(self, x):\n        return x > self.threshold",
            "Gate.threshold = 2",
        ),
        "def handler(x: float) -> bool:\n    return Gate().open(x)",
        [1.0, 3.0],
    ),
    "class-attribute-mutated": (
        ("class Vocab:\n    words = ['a']", "Vocab.words.append('b')"),
        "def handler(x: int) -> list:\n    return Vocab.words * x",
        [1],
    ),
    "class-attribute-added": (
        ("class Box:\n    pass", "Box.size = 7\nBox.unit = 'cm'"),
        "def handler(x: int) -> list:\n    return [Box.size * x, Box.unit]",
        [2],
    ),
    "method-replaced": (
        (
            "class Net:\n    def run(self, x):\n        return x",
            "def faster(self, x):\n    return x * 10\nNet.run = faster",
        ),
        "def handler(x: int) -> int:\n    return Net().run(x)",
        [3],
    ),
    "method-replaced-by-lambda": (
        ("class Net:\n    def run(self, x):\n        return x", "Net.run = lambda self, x: x - 1"),
        "def handler(x: int) -> int:\n    return Net().run(x)",
        [3],
    ),
    "staticmethod-replaced": (
        ("class Ops:\n    @staticmethod\n    def f(x):\n        return x", "Ops.f = staticmethod(lambda x: -x)"),
        "def handler(x: int) -> int:\n    return Ops.f(x)",
        [4],
    ),
    "function-attribute-set": (
        ("def scale(x):\n    return x * scale.factor", "scale.factor = 3"),
        "def handler(x: int) -> int:\n    return scale(x)",
        [2],
    ),
    "function-attribute-mutated": (
        ("def lookup(k):\n    return lookup.table.get(k, 0)\nlookup.table = {'a': 1}", "lookup.table['b'] = 2"),
        "def handler(k: str) -> int:\n    return lookup(k)",
        ["a", "b"],
    ),
    "default-from-a-later-reassigned-global": (
        ("K = 2\ndef times(x, k=K):\n    return x * k", "K = 5"),
        "def handler(x: int) -> list:\n    return [times(x), K]",
        [3],
    ),
    "keyword-only-default": (
        ("K = 2\ndef times(x, *, k=K):\n    return x * k", "K = 5"),
        "def handler(x: int) -> int:\n    return times(x)",
        [3],
    ),
    "mutable-default-mutated": (
        ("def extend(x, acc=[]):\n    return acc + [x]", "extend.__defaults__[0].append(9)"),
        "def handler(x: int) -> list:\n    return extend(x)",
        [1],
    ),
    "defaults-replaced": (
        ("def add(x, y=1):\n    return x + y", "add.__defaults__ = (10,)"),
        "def handler(x: int) -> int:\n    return add(x)",
        [1],
    ),
    "default-is-a-stored-object": (
        (
            "class Model:\n    def __init__(self, k):\n        self.k = k",
            "model = Model(4)\ndef use(x, m=model):\n    return x * m.k",
        ),
        "def handler(x: int) -> int:\n    return use(x)",
        [2],
    ),
    "nested-class-identity": (
        (
            "class Outer:\n    class Inner:\n        def __init__(self, v):\n            self.v = v",
            "obj = Outer.Inner(3)",
        ),
        "def handler(x: int) -> list:\n    return [isinstance(obj, Outer.Inner), type(obj) is Outer.Inner, obj.v + x]",
        [1],
    ),
    "doubly-nested-class-identity": (
        ("class A:\n    class B:\n        class C:\n            pass", "items = [A.B.C(), A.B(), 'x']"),
        "def handler(x: int) -> list:\n    return [isinstance(i, A.B.C) for i in items] + [isinstance(items[1], A.B)]",
        [0],
    ),
    "nested-class-attribute-patched": (
        ("class Outer:\n    class Cfg:\n        depth = 1", "Outer.Cfg.depth = 6"),
        "def handler(x: int) -> int:\n    return Outer.Cfg.depth + x",
        [1],
    ),
    "registration-decorator": (
        (
            "REGISTRY = {}\ndef register(f):\n    REGISTRY[f.__name__] = f\n    return f",
            "@register\ndef inc(x):\n    return x + 1\n\n@register\ndef dbl(x):\n    return x * 2",
        ),
        "def handler(x: int) -> list:\n    return [len(REGISTRY)] + [REGISTRY[k](x) for k in sorted(REGISTRY)]",
        [5],
    ),
    "registration-decorator-with-a-key": (
        (
            "HANDLERS = {}\ndef route(name):\n    def add(f):\n        HANDLERS[name] = f\n        return f\n"
            "    return add",
            "@route('neg')\ndef negate(x):\n    return -x",
        ),
        "def handler(x: int) -> list:\n    return [len(HANDLERS), HANDLERS['neg'](x)]",
        [5],
    ),
    "registration-by-a-method-of-a-notebook-object": (
        (
            "class Registry:\n    def __init__(self):\n        self.items = []\n    def add(self, f):\n"
            "        self.items.append(f)\n        return f\nREG = Registry()",
            "@REG.add\ndef square(x):\n    return x * x\n\n"
            "@REG.add\nclass Cube:\n    def __call__(self, x):\n        return x ** 3",
        ),
        "def handler(x: int) -> list:\n    return [len(REG.items), REG.items[0](x), REG.items[1]()(x)]",
        [2],
    ),
}


SERVED_STATE.update(
    {
        "singledispatch-registrations-from-other-cells": (
            (
                "import functools\n@functools.singledispatch\ndef show(x):\n    return 'any'",
                "@show.register(int)\ndef _(x):\n    return 'int'",
                "@show.register\ndef _(x: str):\n    return 'str'",
            ),
            "def handler(x: int) -> list:\n    return [show(x), show('a'), show(1.5)]",
            [3],
        ),
        "attribute-set-on-a-library-wrapper": (
            ("import functools\n@functools.lru_cache\ndef sq(x):\n    return x * x", "sq.note = 'hi'"),
            "def handler(x: int) -> list:\n    return [sq(x), sq.note]",
            [3],
        ),
        "class-counter-incremented-by-instances": (
            ("class C:\n    n = 0\n    def __init__(self):\n        C.n += 1", "a = C()\nb = C()"),
            "def handler(x: int) -> int:\n    return C.n + x",
            [1],
        ),
        "classmethod-replaced": (
            (
                "class F:\n    base = 1\n    @classmethod\n    def make(cls):\n        return cls.base",
                "F.make = classmethod(lambda cls: cls.base * 100)",
            ),
            "def handler(x: int) -> int:\n    return F.make() + x",
            [1],
        ),
        "attribute-of-a-base-class-patched": (
            ("class A:\n    k = 1\nclass B(A):\n    pass", "A.k = 9"),
            "def handler(x: int) -> int:\n    return B.k + x",
            [1],
        ),
    }
)


@pytest.mark.parametrize("case", SERVED_STATE, ids=str)
def test_the_bento_holds_objects_as_they_were_served(shell, tmp_path, case):
    setup, handler, inputs = SERVED_STATE[case]
    run(shell, *setup, handler)
    same_answers(shell, tmp_path, inputs)


# where a value lands after its definition ran: (setup cells reading VALUE, the expression the handler returns)
LATE_STATE = {
    "class-attribute": (("class Box:\n    item = 0", "Box.item = VALUE"), "Box.item"),
    "nested-class-attribute": (
        ("class Outer:\n    class Box:\n        item = 0", "Outer.Box.item = VALUE"),
        "Outer.Box.item",
    ),
    "function-attribute": (("def get():\n    return get.item", "get.item = VALUE"), "get()"),
    "default": (("X = VALUE\ndef get(item=X):\n    return item", "X = 0"), "get()"),
    "keyword-default": (("X = VALUE\ndef get(*, item=X):\n    return item", "X = 0"), "get()"),
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, where=st.sampled_from(sorted(LATE_STATE)))  # each example builds a bento: ~1 s
def test_any_value_given_after_a_definition_ran_is_held_as_served(shell, tmp_path_factory, value, where):
    shell.run_line_magic("reset", "-f")
    shell.user_ns["VALUE"] = value
    setup, expression = LATE_STATE[where]
    run(shell, *setup, f"def handler(x: int) -> object:\n    return {expression}")
    _, loaded = bento_of(shell, tmp_path_factory.mktemp("late"))
    held = loaded(0)
    assert type(held) is type(value)
    assert held == value or repr(held) == repr(value)  # NaN is not equal to itself; its repr is


def test_a_wrapping_decorator_that_fills_a_registry_is_held_as_served(shell, tmp_path):
    run(
        shell,
        "import functools\nWRAPPED = {}\ndef traced(f):\n    @functools.wraps(f)\n    def wrapper(x):\n"
        "        return f(x)\n    WRAPPED[f.__name__] = wrapper\n    return wrapper",
        "@traced\ndef inc(x):\n    return x + 1",
        "def handler(x: int) -> list:\n    return [len(WRAPPED), WRAPPED['inc'](x), inc(x)]",
    )
    same_answers(shell, tmp_path, [3])


def test_a_stored_object_used_while_definitions_are_created_is_one_clear_error_on_load(shell, tmp_path):
    run(
        shell,
        "class Registry:\n    def __init__(self):\n        self.names = []\nREG = Registry()",
        "class Model:\n    kind = REG.names",
        "def handler(x: int) -> list:\n    return [Model.kind, REG.names]",
    )
    with pytest.raises(BentoIntegrityError) as caught:
        bento_of(shell, tmp_path)
    assert "uses the stored object 'REG' while its definitions are created" in str(caught.value)


# Classes made with a library's machinery (metaclasses, generated methods, slots): held as defined, their state
# after definition kept where the body is theirs. (setup cell, the expression the handler returns)
CLASS_KINDS = {
    "pydantic-model": (
        "import pydantic\nclass Point(pydantic.BaseModel):\n    x: int\n    y: int = 2\n"
        "    model_config = pydantic.ConfigDict(frozen=True)",
        "[Point(x=1).y, isinstance(Point(x=x), Point)]",
    ),
    "abc-subclass": (
        "import abc\nclass Base(abc.ABC):\n    @abc.abstractmethod\n    def f(self): ...\n"
        "class Impl(Base):\n    def f(self):\n        return 3",
        "[Impl().f(), isinstance(Impl(), Base)]",
    ),
    "named-tuple": ("import typing\nclass P(typing.NamedTuple):\n    a: int\n    b: int = 4", "list(P(x))"),
    "typed-dict": ("import typing\nclass TD(typing.TypedDict):\n    a: int", "TD(a=x)"),
    "generic-with-typevar": (
        "import typing\nT = typing.TypeVar('T')\nclass Box(typing.Generic[T]):\n    def __init__(self, v):\n"
        "        self.v = v",
        "Box[int](x).v",
    ),
    "frozen-slotted-dataclass": (
        "import dataclasses\n@dataclasses.dataclass(frozen=True, slots=True)\nclass D:\n    a: int = 1",
        "[D().a, D(x) == D(x)]",
    ),
    "enum-with-attribute-added": (
        "import enum\nclass Color(enum.Enum):\n    RED = 1\nColor.extra = 5",
        "Color.RED.value",
    ),
    "property-added-later": ("class Q:\n    pass\nQ.p = property(lambda self: 11)", "Q().p"),
    "slots": ("class S:\n    __slots__ = ('a',)\n    def __init__(self):\n        self.a = 9", "S().a"),
    "exception-class": ("class MyErr(ValueError):\n    code = 4\nMyErr.code += 1", "MyErr.code"),
}


@pytest.mark.parametrize("kind", CLASS_KINDS, ids=str)
def test_classes_made_by_library_machinery_answer_as_in_the_kernel(shell, tmp_path, kind):
    setup, expression = CLASS_KINDS[kind]
    run(shell, setup, f"def handler(x: int) -> object:\n    return {expression}")
    same_answers(shell, tmp_path, [0, 2])


# A name the code reads that a cell bound and the kernel has lost since: (cells, then `del NAME`)
DELETED = {
    "helper-of-the-handler": ("def helper(v):\n    return v * 2", "def handler(x: int) -> int:\n    return helper(x)"),
    "global-of-a-method": (
        "RATE = 3\nclass M:\n    def f(self, x):\n        return x * RATE",
        "def handler(x: int) -> int:\n    return M().f(x)",
    ),
    "helper-of-a-lambda": (
        "def helper(v):\n    return v * 2\nop = lambda v: helper(v)",
        "def handler(x: int) -> int:\n    return op(x)",
    ),
    "helper-of-a-lambda-inside-a-stored-dict": (
        "def helper(v):\n    return v * 2\nOPS = {'a': lambda v: helper(v)}",
        "def handler(x: int) -> int:\n    return OPS['a'](x)",
    ),
    "private-helper": ("def _helper(v):\n    return v * 2", "def handler(x: int) -> int:\n    return _helper(x)"),
}


@pytest.mark.parametrize("case", DELETED, ids=str)
def test_a_name_deleted_after_it_was_used_refuses_the_capture_naming_it_and_its_cell(shell, tmp_path, case):
    setup, handler = DELETED[case]
    ids = run(shell, setup, handler)
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    same_answers(shell, tmp_path / "before", [2])  # captured while it exists (private names too)
    deleted = "RATE" if "RATE" in setup else "_helper" if "_helper" in setup else "helper"
    run(shell, f"del {deleted}")
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path / "after")
    message = str(caught.value)
    assert f"uses {deleted!r}, which cell {ids[0]}" in message and "\n" not in message


# ndarray subclasses keep their type (stored as a pickle) rather than turning into plain arrays in the bento
ARRAY_SUBCLASSES = {  # setup, an expression whose answer depends on the exact type
    "matrix": ("value = np.matrix([[1, 2], [3, 4]])", "(value * value).tolist()"),
    "masked-array": ("value = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])", "float(value.sum())"),
    "record-with-object-field": ("value = np.array([(1, 'a')], dtype=[('n', 'i4'), ('s', object)])", "value.tolist()"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_SUBCLASSES))
def test_an_ndarray_subclass_keeps_its_type_and_answers(shell, tmp_path, case):
    setup, expression = ARRAY_SUBCLASSES[case]
    run(
        shell,
        f"import numpy as np\n{setup}",
        f"def handler(v: list) -> list:\n    return [type(value).__name__, str(value.dtype), repr({expression})]",
    )
    source, loaded = bento_of(shell, tmp_path)
    assert loaded([]) == shell.user_ns["handler"]([]), source
    assert type(loaded.__globals__["value"]) is type(shell.user_ns["value"])


def test_a_dynamically_quantized_torch_module_is_refused_in_one_line_naming_it_and_its_cell(shell, tmp_path):
    pytest.importorskip("torch")
    ids = run(
        shell,
        "import torch\nfrom torch import nn\n"
        "model = torch.ao.quantization.quantize_dynamic(\n"
        "    nn.Sequential(nn.Linear(4, 2)), {nn.Linear}, dtype=torch.qint8\n"
        ")",
        "def handler(v: list) -> list:\n    return model(torch.tensor([v])).tolist()",
    )
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "'model'" in message and f"cell {ids[0]}" in message
    assert "inside a function the handler calls once" in message


# Names the global names of a handler do not show: refused in one line naming the handler, its cell, the construct
UNSEEN = {
    "output-history-underscore": ("41", "def handler(x: int) -> int:\n    return _ + x", "'_'"),
    "output-history-numbered": ("41", "def handler(x: int) -> int:\n    return _{n} + x", "'_{n}'"),
    "output-history-Out": ("41", "def handler(x: int) -> int:\n    return Out[{n}] + x", "'Out'"),
    "computed-globals-lookup": (
        "key = 'model_a'",
        "def handler(x: int) -> int:\n    return globals()[key] + x",
        "globals()[key]",
    ),
    "computed-eval": ("expr = 'model_a + 1'", "def handler(x: int) -> int:\n    return eval(expr) + x", "eval(expr)"),
    "module-monkeypatch": (
        "import math\nmath.twice = lambda v: 2 * v",
        "def handler(x: int) -> int:\n    return math.twice(x)",
        "math.twice",
    ),
    "module-setattr": (
        "import math\nsetattr(math, 'thrice', lambda v: 3 * v)",
        "def handler(x: int) -> int:\n    return math.thrice(x)",
        "math.thrice",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSEEN))
def test_a_name_capture_cannot_see_is_refused_in_one_line(shell, tmp_path, case):
    setup, handler, construct = UNSEEN[case]
    run(shell, "model_a = 11", setup)
    n = shell.execution_count - 1  # the setup cell's output
    ids = run(shell, handler.format(n=n))
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "'handler'" in message and f"cell {ids[0]}" in message
    assert construct.format(n=n) in message


def test_lookups_by_a_constant_string_are_captured(shell, tmp_path):
    run(
        shell,
        "model_a = 11\nOFFSET = 2",
        "def handler(x: int) -> list:\n"
        "    return [globals()['model_a'] + x, eval('model_a + OFFSET'), globals().get('OFFSET', 0)]",
    )
    same_answers(shell, tmp_path, [1, 5])


def test_messages_name_the_execution_count_the_cell_ran_as(shell, tmp_path):
    counts = []
    for cell_id, source in [("first", "x = 1"), ("helper", "K = 5"), ("handler", "def handler(x):\n    return x * K")]:
        counts.append(shell.run_cell(source, store_history=True, cell_id=cell_id).execution_count)
    shell.run_cell("del K", store_history=True)
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    assert f"cell helper (execution {counts[1]})" in str(caught.value)
    assert "deleted or reset since" in str(caught.value)


def test_a_name_whose_cell_raised_is_reported_as_never_completed(shell, tmp_path):
    shell.run_cell("def helper(v):\n    return v\nraise ValueError('boom')\nK = 5", cell_id="raising")
    run(shell, "def handler(x: int) -> int:\n    return x * K")
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "cell raising" in message and "never completed" in message
    assert "deleted or reset" not in message


# Torch module kinds the module storage cannot round-trip: one line naming the variable, its cell and the fix
UNSTORABLE_MODULES = {
    "parametrized-weight-norm": (
        "from torch.nn.utils.parametrizations import weight_norm\n"
        "model = nn.Sequential(weight_norm(nn.Linear(2, 2)), nn.ReLU()).eval()",
        "remove_parametrizations(model[0], 'weight')",
    ),
    "legacy-weight-norm": (
        "model = nn.Sequential(torch.nn.utils.weight_norm(nn.Linear(2, 2))).eval()",
        "remove_weight_norm(model[0], 'weight')",
    ),
    "pruned": (
        "import torch.nn.utils.prune as prune\nlin = nn.Linear(2, 2)\n"
        "prune.l1_unstructured(lin, 'weight', amount=0.5)\nmodel = nn.Sequential(lin, nn.Identity()).eval()",
        "prune.remove(model[0], 'weight')",
    ),
    "non-module-torch-object": (
        "model = nn.Sequential(nn.Linear(2, 2)).eval()\nmodel.method = torch.nn.utils.prune.RandomUnstructured(0.5)",
        "torch.nn.utils.prune.RandomUnstructured, which a bento cannot load without running code",
    ),
    "torchscript": (
        "class N(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.l = nn.Linear(2, 2)\n"
        "    def forward(self, x):\n        return self.l(x)\nmodel = torch.jit.script(N().eval())",
        "serve the eager module it was scripted from",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE_MODULES))
def test_a_torch_module_the_bento_cannot_round_trip_is_refused_in_one_line_with_its_fix(shell, tmp_path, case):
    pytest.importorskip("torch")
    setup, fix = UNSTORABLE_MODULES[case]
    ids = run(
        shell,
        "import torch\nfrom torch import nn",
        setup,
        "def handler(v: list) -> list:\n    with torch.no_grad():\n        return model(torch.tensor([v])).tolist()",
    )
    with pytest.raises(CaptureError) as caught:
        bento_of(shell, tmp_path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith("cannot capture 'model' ("), message
    assert f"cell {ids[1]}" in message and fix in message, message


@pytest.mark.parametrize(
    "setup",
    [
        "import torch.nn.utils.prune as prune\nprune.l1_unstructured(model[0], 'weight', amount=0.5)\n"
        "prune.remove(model[0], 'weight')",
        "from torch.nn.utils import parametrizations, parametrize\nparametrizations.weight_norm(model[0])\n"
        "parametrize.remove_parametrizations(model[0], 'weight')\nmodel[0]._load_state_dict_pre_hooks.clear()",
    ],
    ids=["prune-remove", "remove-parametrizations"],
)
def test_a_torch_module_made_storable_as_the_refusal_says_is_captured_faithfully(shell, tmp_path, setup):
    pytest.importorskip("torch")
    run(
        shell,
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\nmodel = nn.Sequential(nn.Linear(2, 2)).eval()",
        setup,
        "def handler(v: list) -> list:\n    with torch.no_grad():\n        return model(torch.tensor([v])).tolist()",
    )
    same_answers(shell, tmp_path, [[1.0, 2.0], [-3.0, 0.5]])
