//! The AI provider gateway (issue 11): the HTTP surface over `castellan_ai`'s wire formats.
