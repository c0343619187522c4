"""The commissioner HTML report and Excel workbooks."""
