"""The officer's e-credential (亮证) on the server: QR code batches, status lists, the public
verification page, scans and the admin's status actions. Shared token logic lives in
``mobile_api.contracts.credential`` so the terminal runs the same checks offline."""
