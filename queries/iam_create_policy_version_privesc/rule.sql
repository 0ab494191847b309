SELECT *
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'CreatePolicyVersion'
  AND errorCode IS NULL
  AND lower(json_extract_string(requestParameters, '$.setAsDefault')) = 'true'
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
