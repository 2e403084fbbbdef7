//js
input
