//! Tests of format 5's exact lexical space.
