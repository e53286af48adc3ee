"""Interior mutability, drop guards and copy-on-write, fully typed (mypy --strict checks this file).

A tiny inventory service: the stock lives in a RefCell (borrow-checked at run time), a
rollback guard restores it when an order fails, the price table is loaded once through a
OnceCell, and per-request overrides use a Cow of the shared defaults.

    python examples/typed_cells.py
"""

from __future__ import annotations

from memkit import BorrowMutError, Cow, OnceCell, Ref, RefCell, RefMut, on_error

Stock = dict[str, int]

PRICES: OnceCell[dict[str, float]] = OnceCell()
DEFAULTS: dict[str, float] = {"discount": 0.0, "tax": 0.2}


def prices() -> dict[str, float]:
    return PRICES.get_or_init(lambda: {"apple": 0.5, "pear": 0.75})


def place_order(stock: RefCell[Stock], item: str, count: int) -> float:
    guard: RefMut[Stock]
    with stock.borrow_mut() as guard:
        before = dict(guard.value)

        def rollback() -> None:
            guard.value = before

        with on_error(rollback):
            if guard.value.get(item, 0) < count:
                raise ValueError(f"only {guard.value.get(item, 0)} {item}(s) left")
            guard.value[item] -= count
    return prices()[item] * count


def quote(total: float, overrides: dict[str, float]) -> float:
    settings: Cow[dict[str, float]] = Cow(DEFAULTS)
    if overrides:
        settings.to_mut().update(overrides)  # copies DEFAULTS once; DEFAULTS stays untouched
    rate: dict[str, float] = settings.value
    return round(total * (1 - rate["discount"]) * (1 + rate["tax"]), 2)


def main() -> None:
    stock: RefCell[Stock] = RefCell({"apple": 3, "pear": 1})
    print("order 2 apples:", quote(place_order(stock, "apple", 2), {}))
    try:
        place_order(stock, "pear", 5)
    except ValueError as exc:
        print("order 5 pears failed:", exc)
    view: Ref[Stock]
    with stock.borrow() as view:
        print("stock:", view.value)
        try:
            stock.borrow_mut()
        except BorrowMutError as exc:
            print("writing while reading:", type(exc).__name__)
    print("VIP quote for 1 pear:", quote(place_order(stock, "pear", 1), {"discount": 0.1}))
    assert DEFAULTS["discount"] == 0.0


if __name__ == "__main__":
    main()
