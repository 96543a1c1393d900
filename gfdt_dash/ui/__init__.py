"""The Panel layer: parameter mirrors, the job runner, the generic system tab, the views."""
