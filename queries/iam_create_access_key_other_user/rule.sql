SELECT *
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'CreateAccessKey'
  AND errorCode IS NULL
  AND json_extract_string(requestParameters, '$.userName') IS NOT NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
  AND NOT (userIdentity.type = 'IAMUser'
           AND userIdentity.userName = json_extract_string(requestParameters, '$.userName'))
