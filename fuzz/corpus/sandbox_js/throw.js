//js
throw new TypeError("boom")
