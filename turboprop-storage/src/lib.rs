//! turboprop-storage (under construction).
