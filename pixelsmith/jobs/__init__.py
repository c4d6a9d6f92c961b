"""Operations on images, each declared once, and the one plan of IN -o OUT that every verb
writing images follows. The command line (`pixelsmith edit NAME`), Python and the service read
their operations, options and checks from here.

    from pixelsmith import jobs
    jobs.operations()                               # name -> Operation (title, options, needs)
    big = jobs.apply("sr", image, scale=4)          # a (C, H, W) tensor or a Photo
    jobs.edit_files("denoise", "scans/", "clean/")  # what `pixelsmith edit denoise` runs
"""

from pixelsmith.jobs.catalog import operations, resolve
from pixelsmith.jobs.files import Result, apply, edit_files
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.plan import Item, Plan, plan

__all__ = [
    "Context",
    "Item",
    "Operation",
    "Plan",
    "Result",
    "apply",
    "edit_files",
    "operations",
    "plan",
    "resolve",
]
