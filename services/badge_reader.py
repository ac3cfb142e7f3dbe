"""Reading an agent badge from a photo (vision's QR reader). Never imported by the API
process: reading pixels is worker and CLI work."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.badges import extract_token
from vision.barcode import read_codes


def read_badge(image: npt.NDArray[np.uint8]) -> str | None:
    """The token of the first badge QR code in ``image`` (bare ``SGB1.`` text, or a URL
    with a ``token`` parameter, see :func:`services.badges.extract_token`), else ``None``.

    :param image: BGR or grayscale ``uint8``, as :func:`vision.io.decode_image` gives.
    :raises ValueError, TypeError: on an invalid image (see
        :func:`vision.barcode.read_codes`).
    """
    for code in read_codes(image):
        if code.text is not None:
            token = extract_token(code.text)
            if token is not None:
                return token
    return None
