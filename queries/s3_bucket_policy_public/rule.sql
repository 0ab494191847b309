SELECT * FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND eventName = 'PutBucketPolicy'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
  AND EXISTS (
    SELECT 1 FROM (SELECT unnest(CASE WHEN json_type(requestParameters, '$.bucketPolicy.Statement') = 'ARRAY'
                 THEN json_extract(requestParameters, '$.bucketPolicy.Statement[*]')
                 ELSE [json_extract(requestParameters, '$.bucketPolicy.Statement')] END) AS s) st
    WHERE json_extract_string(st.s, '$.Effect') = 'Allow'
      AND (json_extract_string(st.s, '$.Principal') = '*'
        OR json_extract_string(st.s, '$.Principal.AWS') = '*'
        OR list_contains(json_extract_string(st.s, '$.Principal.AWS[*]'), '*'))
      AND NOT regexp_matches(lower(coalesce(json_extract(st.s, '$.Condition')::VARCHAR, '')),
        'aws:(principalorgid|principalorgpaths|principalaccount|resourceorgid|sourcevpce|sourcevpc|sourceaccount|sourcearn|sourceorgid)'))
