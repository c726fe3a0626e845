"""Da Vinci endpoint discovery (HRex): the `.well-known/davinci-configuration` this payer publishes."""
