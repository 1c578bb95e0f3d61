"""What trained models reveal, as plain numpy: predictions and mistakes (inference), what each block sees of
a digit (features), the papers' experiments (experiments) and their committed reference results (reference).
"""
