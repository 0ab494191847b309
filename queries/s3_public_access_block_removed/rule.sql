SELECT * FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
  AND (eventName IN ('DeleteBucketPublicAccessBlock', 'DeleteAccountPublicAccessBlock')
    OR (eventName IN ('PutBucketPublicAccessBlock', 'PutAccountPublicAccessBlock')
        AND regexp_matches(requestParameters, '"(BlockPublicAcls|IgnorePublicAcls|BlockPublicPolicy|RestrictPublicBuckets)":\s*"?false')))
