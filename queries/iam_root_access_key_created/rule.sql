SELECT * FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'CreateAccessKey'
  AND userIdentity.type = 'Root'
  AND json_extract_string(requestParameters, '$.userName') IS NULL
  AND errorCode IS NULL
