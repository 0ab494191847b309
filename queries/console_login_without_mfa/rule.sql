SELECT *
FROM cloudtrail
WHERE eventSource = 'signin.amazonaws.com'
  AND eventName = 'ConsoleLogin'
  AND userIdentity.type = 'IAMUser'
  AND json_extract_string(responseElements, '$.ConsoleLogin') = 'Success'
  AND coalesce(json_extract_string(additionalEventData, '$.MFAUsed'), 'No') <> 'Yes'
