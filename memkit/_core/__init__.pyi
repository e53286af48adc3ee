"""memkit's compiled core: one submodule per area. Import public names from `memkit`."""

from . import _testing as _testing
from . import alloc as alloc
from . import atomic as atomic
from . import buffers as buffers
from . import cell as cell
from . import info as info
from . import layout as layout
from . import slotmap as slotmap
from . import sync as sync
