SELECT *
FROM cloudtrail
WHERE eventSource = 'signin.amazonaws.com'
  AND eventName = 'ConsoleLogin'
  AND userIdentity.type = 'Root'
  AND json_extract_string(responseElements, '$.ConsoleLogin') = 'Success'
