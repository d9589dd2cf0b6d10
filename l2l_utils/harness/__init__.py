"""Running notebooks: profiles and parameter checks, seeding and device choice, notebook set-up, and the
`l2l-reproduce` batch runner (batch: the command line; jobs: the grid; execution: one job; engine: sequential or
Dask; locks, progress, summary). The top floor: nothing in the package imports it.
"""
