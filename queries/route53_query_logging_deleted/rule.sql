SELECT * FROM cloudtrail
WHERE ((eventSource = 'route53resolver.amazonaws.com'
        AND eventName IN ('DeleteResolverQueryLogConfig', 'DisassociateResolverQueryLogConfig'))
    OR (eventSource = 'route53.amazonaws.com' AND eventName = 'DeleteQueryLoggingConfig'))
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
