import sys, re, nbformat
src = open(sys.argv[1]).read()
chunks = re.split(r"^# %%(.*)$", src, flags=re.M)
nb = nbformat.v4.new_notebook()
nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
               "language_info": {"name": "python"}}
for header, body in zip(chunks[1::2], chunks[2::2]):
    body = body.strip("\n")
    if "[markdown]" in header:
        text = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
        nb.cells.append(nbformat.v4.new_markdown_cell(text))
    else:
        cell = nbformat.v4.new_code_cell(body)
        if "parameters" in header:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
for i, c in enumerate(nb.cells):
    c["id"] = f"cell-{i:02d}"
nbformat.write(nb, sys.argv[2])
