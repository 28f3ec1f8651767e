"""The API's request and response shapes (Pydantic), one module per area; never database rows."""
