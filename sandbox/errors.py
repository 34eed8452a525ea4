import uuid

from django.http import JsonResponse

from generations.stability.contract import ErrorName


class ApiError(Exception):
    """An answer in the v1 error shape."""

    def __init__(self, status: int, name: ErrorName | str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = str(name)
        self.message = message


def error_response(error: ApiError) -> JsonResponse:
    # The spec's Error schema lists `status` as required although it declares no such property; sending
    # it keeps every answer valid against the official file, and v1 clients ignore it.
    body = {"id": uuid.uuid4().hex, "name": error.name, "message": error.message, "status": error.status}
    return JsonResponse(body, status=error.status)
