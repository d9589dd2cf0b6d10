"""Running a notebook: profiles and parameter checks, seeding and device choice, notebook set-up, the
`l2l-reproduce` batch runner. The top floor: nothing in the package imports it.
"""
