SELECT *
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName IN ('AttachUserPolicy', 'AttachGroupPolicy', 'AttachRolePolicy')
  AND errorCode IS NULL
  AND json_extract_string(requestParameters, '$.policyArn') LIKE 'arn:aws%:iam::aws:policy/AdministratorAccess'
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
