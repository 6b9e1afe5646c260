"""The JSON Schemas shipped with the plugin (spec format)."""
