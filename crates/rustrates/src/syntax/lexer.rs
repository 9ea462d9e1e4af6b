//! TODO(syntax helper)
