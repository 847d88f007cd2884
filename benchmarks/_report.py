"""The benchmarks' common tail: print the JSON report and write it to ``--out``."""

import json
from pathlib import Path
from typing import Any, Mapping, Optional, Union


def emit(report: Mapping[str, Any], out: Optional[Union[str, Path]] = None,
         indent: int = 1) -> str:
    """
    Print ``report`` as JSON on stdout and, when ``out`` is given, write it there too.

    :param out: the JSON file (its folder is created); None or empty: stdout only.
    :return: the JSON text.
    """
    text = json.dumps(report, indent=indent)
    print(text, flush=True)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + '\n', encoding='utf-8')
    return text
