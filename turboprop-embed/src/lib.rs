//! turboprop-embed (under construction).
