"""Character sets of the plate readers' models (no imports: the conversion tools read this file too).

``PPOCR_PLATE_CLASSES``: the output classes kept from PP-OCR's multilingual recogniser by
``tools/convert_ppocr_rec.py``, in model output order after the CTC blank (class 0). Besides the
plate alphabet it keeps lower case and the separators seen on plates, so a frame that looks most
like one of those is not forced onto a plate character; the reader folds and drops them.

``ALPHABET``: the plate characters, in the order of the readers' lattices (:mod:`edge.read.lattice`).
"""

PPOCR_PLATE_CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-.:· "

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # the plate characters every reader reads into
