//! turboprop-index (under construction).
