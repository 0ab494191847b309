SELECT * FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND eventName = 'PutBucketAcl'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
  AND (requestParameters LIKE '%acs.amazonaws.com/groups/global/AllUsers%'
    OR requestParameters LIKE '%acs.amazonaws.com/groups/global/AuthenticatedUsers%'
    OR regexp_matches(requestParameters, '"x-amz-acl":\s*\[?\s*"(public-read|public-read-write|authenticated-read)"'))
