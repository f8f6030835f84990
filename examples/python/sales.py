"""One quarter of sales: revenue by region and product (a pandas group-by)
and, per product, how units respond to price (a scikit-learn linear fit).

usage: sales.py QUARTER        reads /in/sales.csv, writes /out/summary.csv
(IN_DIR and OUT_DIR name other folders, to run it outside the sandbox)
"""
import os
import sys

import pandas as pd
from sklearn.linear_model import LinearRegression

quarter = int(sys.argv[1])
sales = pd.read_csv(os.path.join(os.environ.get("IN_DIR", "/in"), "sales.csv"))
q = sales[sales["quarter"] == quarter].assign(revenue=lambda d: d["price"] * d["units"])

summary = (
    q.groupby(["region", "product"])
    .agg(units=("units", "sum"), revenue=("revenue", "sum"), price=("price", "mean"))
    .round(2)
    .reset_index()
)
summary.to_csv(os.path.join(os.environ.get("OUT_DIR", "/out"), "summary.csv"), index=False)

print(f"quarter {quarter}: {len(q)} rows, revenue {q['revenue'].sum():.2f}")
print(summary.pivot(index="region", columns="product", values="revenue").to_string())
for product, rows in q.groupby("product"):
    fit = LinearRegression().fit(rows[["price"]], rows["units"])
    print(f"{product}: units = {fit.intercept_:.3f} {fit.coef_[0]:+.3f} x price")
